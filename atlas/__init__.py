"""atlas: a browsable atlas of what every unit of an ImageNet classifier has learned.

The pieces, in the order data flows through them (README.md, "Layout"):

    model     name -> Model (module, preprocessing, layer catalog, fingerprint), and the runtime
    plan      selection -> units, less those already cached
    engine    the rendering engine (parameterization, transforms, objectives)
    pictures  a plan rendered into the cache
    data      photos and the shared dataset pass that examples, dissection, the activation
              atlas and dictionary features ride on
    store     the cache: content-addressed images, metadata and every feature's records
    site      cache -> static website
    pipeline  a whole build from one request; cli is its thin shell
"""

__version__ = "0.1.0"
