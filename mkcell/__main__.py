"""``python -m mkcell [overrides]`` is the ``mkcell`` command."""

from mkcell.workflow import main

main()
