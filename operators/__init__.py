"""operators: neural-operator surrogates trained on ``datagen`` output (work in progress;
no model is shipped yet)."""


def load_pretrained(name, directory=None, device="cpu"):
    """A shipped checkpoint by name, checked against its model card (``operators.pretrained``)."""
    from .pretrained import load_pretrained as _load

    return _load(name, directory, device)
