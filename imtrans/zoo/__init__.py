"""The model zoo: published translators by name, downloaded, verified and converted once, then cached.

* :mod:`imtrans.zoo.catalogue`: :class:`Pretrained` entries (``register_pretrained`` hook);
  the built-in ones are the official CycleGAN and pix2pix lists;
* :mod:`imtrans.zoo.fetch`: cache folder, ``IMTRANS_PRETRAINED_MIRROR``, resumable download, lock;
* :mod:`imtrans.zoo.convert`: official ``.pth`` -> safetensors with checkpoint metadata;
* :mod:`imtrans.zoo.genfile`: entries that point at an imtrans generator ``.safetensors`` file (checked, used as is);
* :mod:`imtrans.zoo.publish`: a run's generator file and its entry (``imtrans export RUN -o model.safetensors``);
* :mod:`imtrans.zoo.store`: :func:`ensure` (download on first use) and :func:`resolve_model`,
  which lets a zoo name stand wherever a run directory or checkpoint is accepted.

Example::

    from imtrans import load_translator
    t = load_translator("style_monet")        # downloads on first use
"""

from imtrans.zoo.catalogue import PRETRAINED, Pretrained
from imtrans.zoo.fetch import MIRROR_ENV, cache_root
from imtrans.zoo.store import ensure, get, init_from_pretrained, is_cached, names, read_record, resolve_model, weights_path

__all__ = [
    "PRETRAINED", "Pretrained", "MIRROR_ENV", "cache_root", "ensure", "get", "init_from_pretrained",
    "is_cached", "names", "read_record", "resolve_model", "weights_path",
]
