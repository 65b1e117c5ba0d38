"""A delay relay: a wide-area link in user space (this kernel has no netem). Every chunk, each
way, is held for half of the round trip before it is passed on, in order. With --handshake, a
new connection's first bytes also wait out the round trip a TCP handshake would have cost, so a
client that opens more connections pays for each, as over a real link.

Usage: delay-relay.py LISTEN_PORT TARGET_HOST TARGET_PORT RTT_MS [--handshake]
"""
import asyncio
import sys

listen_port, target_host, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rtt = float(sys.argv[4]) / 1000
handshake = "--handshake" in sys.argv[5:]


async def pump(reader, writer, not_before):
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def sender():
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(sender())
    while data := await reader.read(65536):
        queue.put_nowait((max(loop.time() + rtt / 2, not_before), data))
    queue.put_nowait(None)
    await task


async def relay(client_reader, client_writer):
    # The client's SYN went out now; over the link its first bytes could arrive no sooner than a
    # round trip (SYN, SYN-ACK) and half another (the bytes themselves).
    accepted = asyncio.get_running_loop().time()
    first = accepted + 1.5 * rtt if handshake else 0
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        await asyncio.gather(pump(client_reader, upstream_writer, first), pump(upstream_reader, client_writer, 0))
    except (ConnectionError, OSError):
        client_writer.close()


async def main():
    server = await asyncio.start_server(relay, "127.0.0.1", listen_port, backlog=1024)
    print(f"listening on 127.0.0.1:{listen_port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
