"""A loopback upstream registry for the console's browser test.

Starts Debian's docker-registry (Basic auth, htpasswd) on a free port in the
integration suite's upstream range, pushes a few images into it with skopeo,
prints one JSON line describing them, and keeps running until its standard
input is closed (the node test holds the pipe); then it stops the registry
and removes its files.

    {"url": "http://127.0.0.1:5921", "username": "...", "password": "...",
     "images": {"demo": {"repo": "library/demo", "tag": "1.0", "digest": "sha256:...",
                         "size": 123456, "platforms": []}, ...}}

size is what the console shows for an image: config plus layers for an image
manifest, the sum of the platform manifests' sizes for an index. It reuses
the integration suite's helpers (tests/integration), so it needs the same
environment: PIER_URL (for the port range) and the Debian packages
docker-registry, skopeo and apache2-utils.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from pierlib import build_image_layout, build_multiarch_layout  # noqa: E402
from upstreams import DockerRegistry  # noqa: E402


def image_size(image) -> int:
    return image.config.size + sum(layer.size for layer in image.layers)


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="pier-console-layouts-")
    up = DockerRegistry(auth="htpasswd")
    try:
        up.start()
        images = {}

        demo = build_image_layout(os.path.join(tmp, "demo"), "1.0", layer_sizes=(2048, 96 * 1024, 384 * 1024))
        up.push_layout(os.path.join(tmp, "demo"), "1.0", "library/demo")
        images["demo"] = {"repo": "library/demo", "tag": "1.0", "digest": demo.digest,
                          "size": image_size(demo), "platforms": []}

        index, per_platform = build_multiarch_layout(os.path.join(tmp, "multi"), "latest")
        up.push_layout(os.path.join(tmp, "multi"), "latest", "library/multi", all_images=True)
        images["multi"] = {"repo": "library/multi", "tag": "latest", "digest": index.digest,
                           "size": sum(img.manifest.size for img in per_platform),
                           "platforms": ["linux/amd64", "linux/arm64"]}

        tool = build_image_layout(os.path.join(tmp, "tool"), "latest", layer_sizes=(1024, 32 * 1024))
        up.push_layout(os.path.join(tmp, "tool"), "latest", "team/tool")
        images["tool"] = {"repo": "team/tool", "tag": "latest", "digest": tool.digest,
                          "size": image_size(tool), "platforms": []}

        print(json.dumps({"url": up.url, "username": up.username, "password": up.password,
                          "images": images}), flush=True)
        sys.stdin.read()  # until the test closes the pipe (or exits)
        return 0
    except Exception as e:  # noqa: BLE001 - the test prints this line as the reason
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    finally:
        up.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
