"""Developed channel-flow states shipped with the package (see ``datagen.channel.states``)."""
