"""Each distinct image through a processor's image processor once: an evaluation reads the same faces for
every model it measures, and a training batch is encoded twice (with its answer and without), so without a
cache the same face is resized and tiled dozens of times (LLaVA-NeXT's anyres: a fifth of a micro run on a
CPU). The features are the image processor's own, per image, joined in the order asked: the same tensors a
call on the whole batch gives (tests/test_family_contract.py holds every family to it)."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict

import torch
from PIL import Image
from transformers import BatchFeature
from transformers.image_utils import make_flat_list_of_images

# Kit choice: features of a few hundred faces (a LLaVA-1.5 face is 1.4 MB in fp32, a LLaVA-NeXT one 6.8 MB);
# the least recently used are dropped beyond it.
MAX_CACHED_BYTES = 1 << 30


def _digest(image: Image.Image) -> bytes:
    return hashlib.blake2b(f"{image.mode}{image.size}".encode() + image.tobytes(), digest_size=16).digest()


def _nbytes(features: dict) -> int:
    return sum(v.numel() * v.element_size() for v in features.values() if isinstance(v, torch.Tensor))


class CachedImageProcessor:
    """Stands in for a processor's `image_processor`: called as it is, answering from the features of each
    image already seen with the same arguments; every other attribute is the wrapped processor's."""

    def __init__(self, image_processor, max_bytes: int = MAX_CACHED_BYTES):
        self.wrapped = image_processor
        self.max_bytes = max_bytes
        self._features: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # evaluation may encode its next batch in a thread (repro/prefetch.py)

    def __getattr__(self, name):
        return getattr(self.__dict__["wrapped"], name)

    def __deepcopy__(self, memo):
        # A copy is the image processor itself: the processor's to_dict (save_pretrained) deep-copies its
        # parts, then serialises each image processor it finds.
        return copy.deepcopy(self.wrapped, memo)

    def __reduce__(self):
        return CachedImageProcessor, (self.wrapped, self.max_bytes)  # to another process: empty, a lock of its own

    def __call__(self, images, **kwargs):
        flat = make_flat_list_of_images(images) if images is not None else []
        if not flat or kwargs.get("return_tensors") != "pt" or not all(isinstance(i, Image.Image) for i in flat):
            return self.wrapped(images, **kwargs)
        settings = repr(sorted(kwargs.items()))
        per_image = [self._one(image, settings, kwargs) for image in flat]
        keys = per_image[0].keys()
        if any(f.keys() != keys or not all(isinstance(v, torch.Tensor) for v in f.values()) for f in per_image) \
                or any(len({f[k].shape[1:] for f in per_image}) > 1 for k in keys):
            # Features that do not join along the image axis (a batch the processor pads): its own call.
            return self.wrapped(images, **kwargs)
        return BatchFeature({k: torch.cat([f[k] for f in per_image]) for k in keys}, tensor_type="pt")

    def _one(self, image: Image.Image, settings: str, kwargs: dict) -> dict:
        key = (_digest(image), settings)
        with self._lock:
            if key in self._features:
                self._features.move_to_end(key)
                return self._features[key]
        features = dict(self.wrapped([image], **kwargs))
        with self._lock:
            self._features[key] = features
            self._bytes += _nbytes(features)
            while self._bytes > self.max_bytes and len(self._features) > 1:
                _, dropped = self._features.popitem(last=False)
                self._bytes -= _nbytes(dropped)
        return features


def with_cached_images(processor):
    """`processor` with its image processor behind a feature cache (once; a text-only processor as it is)."""
    inner = getattr(processor, "image_processor", None)
    if inner is not None and not isinstance(inner, CachedImageProcessor):
        processor.image_processor = CachedImageProcessor(inner)
    return processor
