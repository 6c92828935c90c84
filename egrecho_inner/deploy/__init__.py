"""After training: CTranslate2 and ONNX import/export and the ``egrecho transcribe`` decoding runtimes
(transformers, CTranslate2, onnxruntime)."""
