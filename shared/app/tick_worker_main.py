"""`python -m shared.app.tick_worker_main TASKS_FD OUTCOMES_FD`: one schedule-tick worker process (started by
shared/app/tick_workers.py). A module of its own, so what it sends back pickles under shared.app.tick_workers."""

import sys
from multiprocessing.connection import Connection

from shared.app.tick_workers import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
