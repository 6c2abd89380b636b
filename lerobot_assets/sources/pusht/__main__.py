"""`python -m lerobot_assets.sources.pusht`: the expert's success report as JSON."""

import argparse
import json

from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.episodes import report


def main(argv: list[str] | None = None) -> None:
    """`python -m lerobot_assets.sources.pusht --episodes 50`: print `report` as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--no-top-camera", action="store_true")
    parser.add_argument("--expert-noise", type=float, default=0.0)
    args = parser.parse_args(argv)
    config = PushTSourceConfig(
        seed=args.seed,
        episodes=args.episodes,
        max_steps=args.max_steps,
        top_camera=not args.no_top_camera,
        expert_noise=args.expert_noise,
    )
    print(json.dumps(report(config), indent=2))


if __name__ == "__main__":
    main()
