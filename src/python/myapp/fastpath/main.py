"""Fast-path agent entry point."""

from __future__ import annotations

from myapp.fastpath.bpf import object_path


def main() -> None:
    print(f"fastpath agent: XDP object at {object_path()}")


if __name__ == "__main__":
    main()
