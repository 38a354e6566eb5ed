import type { Readable } from 'node:stream';

/** Reads a body up to `limit` bytes; past it the stream is destroyed and 'too-large' returned. */
export async function readBounded(body: Readable, limit: number): Promise<Uint8Array | 'too-large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).byteLength;
    if (size > limit) {
      body.destroy();
      return 'too-large';
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}
