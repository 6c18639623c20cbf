"""A fourth backend, written as a user would add one: production's rembg with `post_process_mask` on (rembg's
morphological clean-up of the mask), compared with the candidate beside rembg and the incumbent.

It is this file plus one eval.roles.ROLES line (tests/test_roles.py adds the line for its runs).
"""

import dataclasses

from eval.backends.rembg_backend import RembgBackend

NAME = "rembg_post"


class RembgPostProcessBackend(RembgBackend):
    name = NAME

    @classmethod
    def for_run(cls, options, inputs):
        config = inputs.baseline_config
        remove = tuple(sorted({**dict(config.remove_kwargs), "post_process_mask": True}.items()))
        return cls(dataclasses.replace(config, remove_kwargs=remove), options.torch_threads)
