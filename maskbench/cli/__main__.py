"""``python -m maskbench.cli`` runs the command line."""

from maskbench.cli import main

if __name__ == "__main__":
    main()
