"""The Gradio page of ``imtrans demo`` (optional extra ``imtrans[demo]``).

One event, ``/translate`` (image file + direction -> PNG), serves both the page
and Gradio's client API, so the demo is also a tiny HTTP service::

    from gradio_client import Client, handle_file
    out_png = Client("http://127.0.0.1:7860/").predict(handle_file("horse.jpg"), "a2b", api_name="/translate")

Errors a visitor can cause (oversized or broken uploads) are raised as
``gradio.Error`` with the :class:`~imtrans.errors.ImtransError` sentence, which
Gradio shows in the page (and the client raises) instead of a stack trace.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from imtrans.demo.model import DemoModel, Example, heldout_examples
from imtrans.errors import ImtransError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def require_gradio() -> Any:
    """Import Gradio or explain how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo
    try:
        import gradio
    except ImportError:
        raise ImtransError("the demo page needs Gradio, which is not installed; install it with: pip install 'imtrans[demo]'") from None
    return gradio


def _guarded_image(gr: Any) -> type:
    """``gr.Image`` whose upload decoding failures become a readable ``gr.Error``.

    Gradio opens the upload with Pillow before our function runs; a corrupt file
    or one beyond Pillow's own decompression-bomb limit would otherwise end as a
    bare "Error" in the page.  ``is_template`` makes Gradio reuse the Image
    widget in the browser for this subclass.
    """
from gradio.events import Dependency

    class GuardedImage(gr.Image):
        is_template = True

        def preprocess(self, payload: Any) -> Any:
            try:
                return super().preprocess(payload)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 - any decode failure of an upload is the visitor's file
                raise gr.Error(f"the uploaded file cannot be read as an image ({type(e).__name__}: {e})") from None

    return GuardedImage


def build_demo(model: DemoModel, examples: Optional[list[Example]] = None) -> Any:
    """The ``gradio.Blocks`` page for ``model``: upload/paste, direction, side by side, download, examples, facts."""
    gr = require_gradio()
    labels = model.labels()

    def translate(path: Optional[str], direction: str) -> Any:
        if not path:
            raise gr.Error("no image yet: upload, paste or drop an image first")
        try:
            return model.translate_file(path, direction or model.directions[0])
        except ImtransError as e:
            raise gr.Error(str(e)) from None

    title = f"imtrans · {Path(model.source).name or model.source}"
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nUpload or paste an image, pick the direction, translate; "
                    "the result can be downloaded from its corner.")
        gr.Markdown(model.info.markdown(model.device, model.precision, model.tile))
        direction = gr.Radio(
            [(labels[d], d) for d in model.directions], value=model.directions[0], label="Direction",
            visible=len(model.directions) > 1,
        )
        with gr.Row(equal_height=True):
            # image_mode=None: the uploaded file reaches translate() untouched, so our guards see it first
            inp = _guarded_image(gr)(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                     label="Input", format="png")
            out = gr.Image(type="pil", format="png", label="Translated", interactive=False,
                           buttons=["download", "fullscreen"])
        button = gr.Button("Translate", variant="primary")
        button.click(translate, inputs=[inp, direction], outputs=out, api_name="translate", concurrency_limit=1)
        if examples:
            gr.Examples([[str(e.path), e.direction] for e in examples], inputs=[inp, direction], outputs=out,
                        fn=translate, run_on_click=True, cache_examples=False, label="Examples (held-out images)")
        gr.Markdown(f"Limits: {model.max_upload_bytes / 1e6:.0f} MB per file, {model.max_pixels / 1e6:.0f} megapixels.")
    return demo


def launch(
    model: DemoModel,
    *,
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    examples: Optional[list[Example]] = None,
    block: bool = True,
    quiet: bool = False,
) -> Any:
    """Build and serve the page; returns the ``gradio.Blocks`` (``block=False`` returns at once, for tests)."""
    if examples is None:
        cache = Path(tempfile.mkdtemp(prefix="imtrans-demo-"))
        examples = heldout_examples(model.meta, model.directions, cache)
    demo = build_demo(model, examples)
    demo.queue(default_concurrency_limit=1)
    allowed = sorted({str(Path(e.path).resolve().parent) for e in examples})
    demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, quiet=quiet,
        max_file_size=model.max_upload_bytes, allowed_paths=allowed, prevent_thread_lock=not block, ssr_mode=False,
    )
    return demo