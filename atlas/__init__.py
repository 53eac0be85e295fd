"""atlas: a browsable atlas of what every unit of an ImageNet classifier has learned.

The pieces, in the order data flows through them:

    models   name -> Model (module, preprocessing, layer catalog, fingerprint)
    build    selection -> units; plan -> render -> cache
    optvis   the rendering engine (parameterization, transforms, objectives)
    cache    content-addressed images and metadata
    site     cache -> static website
"""

__version__ = "0.1.0"
