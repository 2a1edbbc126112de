"""One ``bench run`` in three steps that never call back: plan, measure, finalize.

``plan`` resolves the request into a plain ``Plan`` (device, inputs, prepared and compiled models,
the manifest); ``measure`` runs sessions over the sample library into a record sink, here or on a
remote device; ``finalize`` reads the record once and writes metrics.json. ``benchmark`` drives them
and turns however a run ends into the record's status.
"""
