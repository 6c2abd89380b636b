"""Fork safety of the per-process decoders and episode readers of `LeRobotV3Dataset`.

A decoder whose threads ran in the parent (dav1d, frame-threaded FFmpeg decoders) must never be
freed in a forked child: its destructor waits on condition variables of threads that do not exist
there, and the DataLoader worker hangs forever (seen with PyAV's libdav1d in pthread_cond_destroy).
Two measures:
- caches inherited through fork are kept referenced here, never freed (workers leave through
  os._exit, so they are not finalized either); so are inherited EpisodeReaders, whose prefetch
  threads and sockets exist only in the parent;
- garbage still waiting for the cycle collector (e.g. a closed PyAV container) is collected in the
  parent just before a fork, once this process has decoded video through a reader.
"""

import gc
import os
from typing import Any

_INHERITED_CACHES: list[Any] = []
_decoded_in_this_process = False


def keep_inherited(obj: Any) -> None:
    """Keep an object inherited through fork referenced for the rest of this process (never freed)."""
    _INHERITED_CACHES.append(obj)


def note_decoding() -> None:
    """This process decodes video through a reader: collect garbage before every later fork."""
    global _decoded_in_this_process
    _decoded_in_this_process = True


def _collect_before_fork() -> None:
    if _decoded_in_this_process:
        gc.collect()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_collect_before_fork)
