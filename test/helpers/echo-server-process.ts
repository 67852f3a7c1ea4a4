/**
 * Test helper run as a child process (`child_process.fork`): an echo server on 127.0.0.1:0 whose
 * `echo` handler answers items with a negative id at once and holds every other call forever. It
 * reports `{ port }` once listening and `{ held: n }` as calls arrive, and exits when its parent goes.
 */
import { createServer, loadProtocol } from '../../src/index.js';
import { repoPath } from './repo.js';

const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
let held = 0;
const server = createServer({
  protocol,
  handlers: {
    echo: (req: { item: { id: number } }) => {
      if (req.item.id < 0) return req.item;
      held++;
      process.send?.({ held });
      return new Promise(() => undefined);
    },
  },
});
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
process.send?.({ port });
process.on('disconnect', () => process.exit(0));
