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
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from imtrans.demo.model import DemoModel, Example, heldout_examples
from imtrans.errors import ImtransError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# Small images (the 64 px quickstart, icons) fill the viewer, scaled without blur, instead of a tiny
# patch in a large box; large ones are scaled down to fit as usual.
CSS = ".imtrans-view img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }"


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

    class GuardedImage(gr.Image):
        is_template = True

        def preprocess(self, payload: Any) -> Any:
            try:
                return super().preprocess(payload)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 - any decode failure of an upload is the visitor's file
                raise gr.Error(f"the uploaded file cannot be read as an image ({type(e).__name__}: {e})",
                               print_exception=False) from None

    return GuardedImage


def build_demo(model: DemoModel, examples: Optional[list[Example]] = None) -> Any:
    """The ``gradio.Blocks`` page for ``model``: upload/paste, direction, side by side, download, examples, facts."""
    gr = require_gradio()
    labels = model.labels()

    def translate(path: Optional[str], direction: str) -> Any:
        if not path:
            raise gr.Error("no image yet: upload, paste or drop an image first", print_exception=False)
        try:
            return model.translate_file(path, direction or model.directions[0])
        except ImtransError as e:
            raise gr.Error(str(e), print_exception=False) from None  # the visitor's mistake, not a server bug

    title = f"imtrans · {Path(model.source).name or model.source}"
    first = examples[0] if examples else None
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nUpload or paste an image, pick the direction, translate; "
                    "download the result from its corner.")
        with gr.Row(equal_height=True):
            # image_mode=None: the uploaded file reaches translate() untouched, so our guards see it first
            inp = _guarded_image(gr)(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                     label="Input", format="png", height=360, elem_classes=["imtrans-view"], value=str(first.path) if first else None)
            # the page opens on a worked example, so a visitor sees what the model does before uploading
            out = gr.Image(type="pil", format="png", label="Translated", interactive=False, height=360, elem_classes=["imtrans-view"],
                           buttons=["download", "fullscreen"],
                           value=model.translate_file(first.path, first.direction) if first else None)
        with gr.Row():
            direction = gr.Radio(
                [(labels[d], d) for d in model.directions], value=first.direction if first else model.directions[0],
                label="Direction", visible=len(model.directions) > 1, scale=1,
            )
            button = gr.Button("Translate", variant="primary", scale=2)
        button.click(translate, inputs=[inp, direction], outputs=out, api_name="translate", concurrency_limit=1)
        with gr.Row():
            with gr.Column(scale=1):
                if examples:
                    gr.Examples([[str(e.path), e.direction] for e in examples], inputs=[inp, direction], outputs=out,
                                fn=translate, run_on_click=True, cache_examples=False, examples_per_page=8,
                                label="Examples: held-out images (click one)")
            with gr.Column(scale=1):
                gr.Markdown(model.info.markdown(model.device, model.precision, model.tile))
                gr.Markdown(f"Limits: {model.max_upload_bytes / 2**20:g} MB per file, "
                            f"{model.max_pixels / 1e6:.0f} megapixels. API: `/translate` (see \"Use via API\" below).")
    return demo


def host_warning(host: str) -> Optional[str]:
    """The warning to print when ``host`` exposes the page beyond this machine, else ``None``."""
    if host in LOCAL_HOSTS:
        return None
    return (f"the page has no authentication; binding to {host} lets anyone who can reach this machine "
            "use it (and its CPU/GPU)")


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
    # quiet=True: Gradio's own banner tells users to "set `share=True` in `launch()`", an option imtrans
    # does not offer; the address is printed here instead.
    demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, quiet=True,
        max_file_size=model.max_upload_bytes, allowed_paths=allowed, prevent_thread_lock=True, ssr_mode=False, css=CSS,
    )
    if not quiet:
        print(f"open {demo.local_url} in a browser", file=sys.stderr, flush=True)
    if block:
        demo.block_thread()
    return demo
