"""What the PushT source generates (`PushTSourceConfig`), the features it records, and its constants."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PUSHT_FPS = 10
PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."
PUSHT_ENV_ID = "gym_pusht/PushT-v0"

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
REWARD_KEY = "next.reward"
DONE_KEY = "next.done"
SUCCESS_KEY = "next.success"
IMAGE_KEY = "observation.image"
TOP_CAMERA_KEY = "observation.images.top"
TOP_CAMERA_HEIGHT = 480
TOP_CAMERA_WIDTH = 640
# The 8 keypoints of the T (gym-pusht's `get_keypoints`), flattened x0, y0, x1, y1, ...
KEYPOINT_NAMES = [f"{axis}{i}" for i in range(8) for axis in ("x", "y")]


def pusht_features(image_size: int = 96, top_camera: bool = True) -> dict[str, dict[str, Any]]:
    """LeRobot v3 `features` of a PushT dataset, without the index features (the writer adds them).

    As `lerobot/pusht` and `lerobot/pusht_keypoints` record them: the block's 8 keypoints
    (`observation.environment_state`, x0, y0, x1, y1, ... in gym-pusht's `get_keypoints` order), and
    the outcome of frame t's action (`next.reward`, `next.done`, `next.success`, shape [1]).
    Numeric features come first, cameras last: the raw-v1 route (`SessionSpec.writer_features`)
    orders them that way, so both routes declare the same info.json.
    """
    video_names = ["height", "width", "channels"]
    features: dict[str, dict[str, Any]] = {
        STATE_KEY: {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        ENV_STATE_KEY: {"dtype": "float32", "shape": [16], "names": KEYPOINT_NAMES},
        ACTION_KEY: {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        REWARD_KEY: {"dtype": "float32", "shape": [1], "names": None},
        DONE_KEY: {"dtype": "bool", "shape": [1], "names": None},
        SUCCESS_KEY: {"dtype": "bool", "shape": [1], "names": None},
        IMAGE_KEY: {"dtype": "video", "shape": [image_size, image_size, 3], "names": video_names},
    }
    if top_camera:
        features[TOP_CAMERA_KEY] = {
            "dtype": "video",
            "shape": [TOP_CAMERA_HEIGHT, TOP_CAMERA_WIDTH, 3],
            "names": list(video_names),
        }
    return features


class PushTSourceConfig(BaseModel):
    """What the sim source generates. Episode i uses seed `seed + i`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="seed of the first episode")
    episodes: int = Field(10, ge=0)
    max_steps: int = Field(300, ge=1, description="an episode ends at success or after this many actions")
    image_size: int = Field(96, ge=8, le=1024, description="side of the square `observation.image`")
    top_camera: bool = True
    expert_noise: float = Field(
        0.0, ge=0.0, le=50.0, description="std (px) of Gaussian noise on each commanded target"
    )
    task: str = Field(PUSHT_TASK, min_length=1)

    def features(self) -> dict[str, dict[str, Any]]:
        return pusht_features(self.image_size, self.top_camera)
