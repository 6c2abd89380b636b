"""What the PushT source generates (`PushTSourceConfig`), the features it records, and its constants."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PUSHT_FPS = 10
PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."
PUSHT_ENV_ID = "gym_pusht/PushT-v0"

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_KEY = "observation.image"
TOP_CAMERA_KEY = "observation.images.top"
TOP_CAMERA_HEIGHT = 480
TOP_CAMERA_WIDTH = 640


def pusht_features(image_size: int = 96, top_camera: bool = True) -> dict[str, dict[str, Any]]:
    """LeRobot v3 `features` of a PushT dataset, without the index features (the writer adds them)."""
    video_names = ["height", "width", "channels"]
    features: dict[str, dict[str, Any]] = {
        STATE_KEY: {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        ACTION_KEY: {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
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
