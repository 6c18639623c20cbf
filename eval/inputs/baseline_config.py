"""How production runs rembg (configs/rembg_production.yaml): the baseline must match it exactly."""

import dataclasses

from eval.inputs.yaml_config import load_yaml

_BYTE = {"type": "integer", "minimum": 0, "maximum": 255}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["production_ref", "model", "model_md5", "session", "remove", "alpha_threshold",
                 "exif_transpose"],
    "properties": {
        "production_ref": {"type": "string"},
        "model": {"type": "string", "minLength": 1},
        "model_md5": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "session": {
            "type": "object",
            "additionalProperties": False,
            "required": ["providers", "intra_op_num_threads", "inter_op_num_threads"],
            "properties": {
                "providers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "intra_op_num_threads": {"type": "integer", "minimum": 1},
                "inter_op_num_threads": {"type": "integer", "minimum": 1},
                # onnxruntime's CPU memory arena; absent means off. onnxruntime's default, and so production's,
                # is on: the arena pools every inference's buffers and keeps them, sized by the largest photo
                # seen, per session thread. Off returns them to the allocator: peak memory with 12-Mpixel photos
                # side by side stays under the gate's budget, and the masks are the same (an allocator setting,
                # no arithmetic changes).
                "enable_cpu_mem_arena": {"type": "boolean"},
            },
        },
        "remove": {
            "type": "object",
            "additionalProperties": False,
            "required": ["alpha_matting", "alpha_matting_foreground_threshold",
                         "alpha_matting_background_threshold", "alpha_matting_erode_size",
                         "post_process_mask"],
            "properties": {
                "alpha_matting": {"type": "boolean"},
                "alpha_matting_foreground_threshold": _BYTE,
                "alpha_matting_background_threshold": _BYTE,
                "alpha_matting_erode_size": {"type": "integer", "minimum": 0},
                "post_process_mask": {"type": "boolean"},
            },
        },
        "alpha_threshold": {"type": "integer", "minimum": 1, "maximum": 255},
        "exif_transpose": {"const": True},
    },
}


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    path: str
    sha256: str
    model: str
    model_md5: str
    providers: tuple
    intra_op_num_threads: int
    inter_op_num_threads: int
    remove_kwargs: tuple  # sorted (name, value) pairs passed to rembg.remove
    alpha_threshold: int
    enable_cpu_mem_arena: bool = False  # production's new_session leaves it on; the same masks either way


def load_baseline_config(path):
    data, digest = load_yaml(path, SCHEMA)
    session = data["session"]
    return BaselineConfig(str(path), digest, data["model"], data["model_md5"], tuple(session["providers"]),
                          session["intra_op_num_threads"], session["inter_op_num_threads"],
                          tuple(sorted(data["remove"].items())), data["alpha_threshold"],
                          session.get("enable_cpu_mem_arena", False))
