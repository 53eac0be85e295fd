"""Feature visualization by optimization: parameterize an image, transform it,
score it with an objective on the model's activations, follow the gradient.

    param       image parameterizations (Fourier + decorrelated colour, pixels)
    transforms  random per-image transformations for robustness
    objectives  what to maximize, batched: one score per image
    hooks       truncated forward passes and redirected ReLU gradients
    render      the optimization loop over a batch of units
"""
