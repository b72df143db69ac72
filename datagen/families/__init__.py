"""One module per problem family; each registers itself with ``register_family``."""
