"""The incumbent: the YOLO-seg checkpoint production serves now, run exactly as the candidate is run.

After the first promotion the checkpoint to beat is no longer only rembg: a candidate worse than the
one in production but better than rembg would otherwise pass. The incumbent is loaded, pinned and
predicted through the candidate's own code with the candidate's settings; only its name differs.
"""

from eval.backends.yolo_backend import YoloSegBackend


class IncumbentBackend(YoloSegBackend):
    name = "incumbent"
    checkpoint_input = "incumbent"
