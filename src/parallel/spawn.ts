// Ways to start a rank: in this thread (tests), in a Node worker_thread (the CLI). The browser's
// Web Worker spawner is browser-spawn.ts (it needs Vite's `new Worker(new URL(...))`).

import * as Comlink from 'comlink';
import type { BackendInfo } from '../backend/backend';
import type { BackendName } from '../model/config';
import type { RankAPI } from './protocol';
import { rankHandle, type RankHandle } from './coordinator';
import { RankService } from './rank';

/**
 * A rank in this thread, behind comlink over a MessageChannel: the same messages as a real Worker
 * (ports and buffers are transferred), but every rank shares this thread's tfjs engine.
 */
export function spawnInProcess(startBackend: (name: BackendName) => Promise<BackendInfo>): (rank: number) => RankHandle {
  return () => {
    const { port1, port2 } = new MessageChannel();
    Comlink.expose(new RankService(startBackend), port2);
    return rankHandle(Comlink.wrap<RankAPI>(port1), () => {
      port1.close();
      port2.close();
    });
  };
}
