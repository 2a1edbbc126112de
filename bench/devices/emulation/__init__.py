"""The engine that runs a device family's numerics on the host, for ``--emulate``.

``EmulatedDevice`` (``device``) runs on ONNX Runtime what a family's ``Numerics`` (``numerics``;
the family names its class in ``FAMILY.emulation``) compiles: for FP16 devices the exported graph
converted by ``fp16`` under the family's FP16 policy (``fp16_numerics``, ``fp16_policy``), for the
IMX500 its own INT8 model. Emulated runs predict drift; their timing is the host's, never the device's.
"""
