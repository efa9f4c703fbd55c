import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { connectHoldingLargeWrites, holdLargeWrites } from './held-writes.ts';

/** A socket that keeps what each of its writes sent: one entry per write, its chunks as text. */
function recordingSocket() {
  const sent: string[][] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      sent.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      sent.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      done();
    },
  });
  return { socket: holdLargeWrites(socket), sent };
}

const large = (tag: string) => tag + '.'.repeat(1024);
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('large writes to the database wait for what follows them', () => {
  it('sends a small write at once', () => {
    const { socket, sent } = recordingSocket();
    socket.write(Buffer.from('begin;select 1'));
    expect(sent).toEqual([['begin;select 1']]);
  });

  it('sends a large write together with the small one that follows it in the same turn (its COMMIT)', async () => {
    const { socket, sent } = recordingSocket();
    socket.write(Buffer.from(large('begin;insert')));
    expect(sent).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve)); // where postgres.js sends what it gathered
    socket.write(Buffer.from('commit'));
    expect(sent).toEqual([[large('begin;insert'), 'commit']]);
    await nextTurn();
    expect(sent).toHaveLength(1);
  });

  it('holds large writes that follow each other until a small one comes', () => {
    const { socket, sent } = recordingSocket();
    socket.write(Buffer.from(large('first')));
    socket.write(Buffer.from(large('second')));
    expect(sent).toEqual([]);
    socket.write(Buffer.from('commit'));
    expect(sent).toEqual([[large('first'), large('second'), 'commit']]);
  });

  it('sends a large write that nothing follows on the next turn', async () => {
    const { socket, sent } = recordingSocket();
    socket.write(Buffer.from(large('alone')));
    await nextTurn();
    expect(sent).toEqual([[large('alone')]]);
    socket.write(Buffer.from('later'));
    expect(sent).toEqual([[large('alone')], ['later']]);
  });

  it('connects as postgres.js would, naming the host TLS checks the certificate against', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const expected = large('startup') + 'sync';
    const received = once(server, 'connection').then(async ([peer]) => {
      let text = '';
      for await (const data of peer as net.Socket) if ((text += data).length >= expected.length) break;
      return text;
    });
    const { port } = server.address() as AddressInfo;
    const socket = connectHoldingLargeWrites({ host: ['127.0.0.1'], port: [port] });
    try {
      expect(socket).toMatchObject({ host: '127.0.0.1', port });
      socket.write(Buffer.from(large('startup')));
      socket.write(Buffer.from('sync'));
      expect(await received).toBe(expected);
    } finally {
      socket.destroy();
      server.close();
    }
  });
});
