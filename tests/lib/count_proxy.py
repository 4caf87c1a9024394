#!/usr/bin/env python3
"""count_proxy.py LISTEN_PORT TARGET_PORT COUNT_FILE

A TCP proxy on 127.0.0.1 that counts the bytes clients send to the server
behind it, the way a destination sees them: COUNT_FILE holds the total so
far (rewritten as it grows).  The server may die and come back on its
port: a connection then fails, and the next one goes to the new server.
It is how a test measures what a migration wrote into a destination that
was killed and restarted, without trusting the migrator's own figures."""
import os
import socket
import sys
import threading

listen_port, target_port, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
total = 0
written = -1


def publish(force=False):
    global written
    if force or total - written >= (1 << 20):
        tmp = count_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % total)
        os.rename(tmp, count_file)
        written = total


def pump(src, dst, counted):
    global total
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
            if counted:
                with lock:
                    total += len(data)
                    publish()
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if counted:
            with lock:
                publish(True)


def serve(client):
    try:
        server = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, server, True), daemon=True).start()
    threading.Thread(target=pump, args=(server, client, False), daemon=True).start()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen_port))
ls.listen(16)
with lock:
    publish(True)
while True:
    c, _ = ls.accept()
    serve(c)
