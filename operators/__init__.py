"""operators: neural-operator surrogates trained on ``datagen`` output (work in progress;
no model is shipped yet)."""
