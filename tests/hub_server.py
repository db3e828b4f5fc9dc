"""The local Hub-compatible server for tests; the implementation lives in `hfssl.hub.local_server` so users can reuse it.

    from tests.hub_server import LocalHub
    with LocalHub(tokens={"hf_test": "alice"}) as hub:
        ...  # point huggingface_hub at hub.endpoint
"""

from hfssl.hub.local_server import Faults, Identity, LocalHub, main

__all__ = ["Faults", "Identity", "LocalHub", "main"]

if __name__ == "__main__":
    main()
