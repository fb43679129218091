"""The raw Fabric floor: connect to every host in parallel and run `true` once each."""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection

hosts = json.loads(sys.argv[1])  # [[address, key_filename], ...]


def one(entry):
    address, key = entry
    with Connection(address, user="root", connect_kwargs={
            "key_filename": key, "look_for_keys": False, "allow_agent": False}) as conn:
        conn.run("true", hide=True)


with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
    list(pool.map(one, hosts))
