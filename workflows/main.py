"""The runnable entry: ``python workflows/main.py [overrides]`` is ``mkcell [overrides]``.

The command line itself lives in the package (``mkcell/workflow/_cli.py``); this folder holds
the entry and the recipes (``README.md``: cohorts and clusters), and no science.
"""

from mkcell.workflow import main

if __name__ == "__main__":
    main()
