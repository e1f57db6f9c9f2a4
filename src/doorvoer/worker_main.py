"""`python -m doorvoer.worker_main FD`: a transform worker process, started by the node
(see workers.py). Not a command for people."""

import sys

from doorvoer.workers import child_main

if __name__ == "__main__":
    child_main(int(sys.argv[1]))
