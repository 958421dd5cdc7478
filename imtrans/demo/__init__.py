"""`imtrans demo`: a local web page (Gradio, optional extra ``imtrans[demo]``) that translates uploads.

* :mod:`imtrans.demo.model`: translators, upload guards, model facts and examples (no web code);
* :mod:`imtrans.demo.app`: the Gradio page and its ``/translate`` client API.
"""

from imtrans.demo.model import DemoModel, Example, ModelInfo

__all__ = ["DemoModel", "Example", "ModelInfo"]
