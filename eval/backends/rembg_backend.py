"""The production baseline: rembg's own new_session/remove path, configured as production runs it."""

import concurrent.futures
import importlib.metadata
import os

import numpy as np
from PIL import Image

from eval import runtime
from eval.backends.base import Backend
from eval.digests import file_digest
from eval.errors import GateInputError


class RembgBackend(Backend):
    name = "rembg"

    @classmethod
    def for_run(cls, options, inputs):
        return cls(inputs.baseline_config, options.torch_threads)

    def __init__(self, config, torch_threads=1):
        runtime.prepare(torch_threads)
        import onnxruntime
        import rembg
        from rembg.sessions import sessions_class

        self._config = config
        self._remove = rembg.remove
        session_class = next((c for c in sessions_class if c.name() == config.model), None)
        if session_class is None:
            known = ", ".join(sorted(c.name() for c in sessions_class))
            raise GateInputError(config.path, f"unknown rembg model {config.model!r}; rembg knows: {known}")
        # Resolve the weights ourselves: rembg would otherwise try to download them (impossible offline).
        weights = session_class.resolve_existing(f"{config.model}.onnx")
        if weights is None:
            raise GateInputError(
                config.path,
                f"weights for rembg model {config.model!r} are not installed: rembg looks in "
                f"{session_class.model_dir()} and {session_class.rembg_home()} (set U2NET_HOME to choose); "
                "install them offline with scripts/bootstrap.sh")
        self._weights_md5 = file_digest(weights, "md5")
        if self._weights_md5 != config.model_md5:
            raise GateInputError(weights, f"md5 {self._weights_md5} differs from the production weights' "
                                          f"{config.model_md5} pinned in {config.path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = config.intra_op_num_threads
        options.inter_op_num_threads = config.inter_op_num_threads
        options.enable_cpu_mem_arena = config.enable_cpu_mem_arena  # memory only; in config_sha256
        self._session = rembg.new_session(config.model, sess_opts=options, providers=list(config.providers))
        active = self._session.inner_session.get_providers()
        if list(active) != list(config.providers):
            # onnxruntime falls back to CPU silently: the baseline would not be what production runs.
            raise GateInputError(config.path, f"onnxruntime providers {active} differ from the configured "
                                              f"{list(config.providers)}")
        self._versions = self.library_versions()

    @staticmethod
    def library_versions():
        """Versions of the libraries the baseline's masks depend on, read without importing them."""
        return {name: importlib.metadata.version(name) for name in ("rembg", "onnxruntime")}

    def provenance(self):
        c = self._config
        return {
            "backend": "rembg",
            "model": c.model,
            "model_md5": self._weights_md5,
            "providers": list(c.providers),
            "intra_op_num_threads": c.intra_op_num_threads,
            "inter_op_num_threads": c.inter_op_num_threads,
            "remove_kwargs": dict(c.remove_kwargs),
            "alpha_threshold": c.alpha_threshold,
            "exif": "applied by the gate's decoder before inference",
            "config_sha256": c.sha256,
            **self._versions,
        }

    def predict(self, images):
        return self.each_image(self.predict_one, images)

    @staticmethod
    def each_image(predict_one, images):
        """`predict_one` on every image, side by side. Production pins onnxruntime to few threads; the session
        is thread-safe and releases the GIL, so this changes no value: each image's inference is unchanged."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return list(pool.map(predict_one, images))

    def predict_one(self, image):
        """The mask of one photo (eval.backends.timed times each photo's call)."""
        # The scored mask is the alpha channel of the RGBA cutout production emits (matting included), read
        # alone: a 12-Mpixel cutout is 48 MB, its alpha 12 MB.
        cutout = self._remove(Image.fromarray(image), session=self._session, **dict(self._config.remove_kwargs))
        alpha = np.asarray((cutout if cutout.mode == "RGBA" else cutout.convert("RGBA")).getchannel("A"))
        return alpha >= self._config.alpha_threshold
