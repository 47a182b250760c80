// Ways to start a rank: in this thread (tests), in a Node worker_thread (the CLI). The browser's
// Web Worker spawner is browser-spawn.ts (it needs Vite's `new Worker(new URL(...))`).

import * as Comlink from 'comlink';
import type { BackendInfo } from '../backend/backend';
import type { BackendName } from '../model/config';
import type { RankAPI } from './protocol';
import { DistError, rankHandle, type RankHandle } from './coordinator';
import { RankService } from './rank';

/**
 * A rank in this thread, behind comlink over a MessageChannel: the same messages as a real Worker
 * (ports and buffers are transferred), but every rank shares this thread's tfjs engine. An injected
 * kill closes its channel and fails the handle, as a dead worker's would.
 */
export function spawnInProcess(startBackend: (name: BackendName) => Promise<BackendInfo>): (rank: number) => RankHandle {
  return (rank) => {
    const { port1, port2 } = new MessageChannel();
    let die!: (e: Error) => void;
    const failed = new Promise<never>((_, reject) => (die = reject));
    const close = () => {
      port1.close();
      port2.close();
    };
    const service = new RankService(startBackend, {
      kill(message) {
        service.dispose();
        close();
        die(new DistError(`training worker ${rank} crashed: ${message}`));
      },
    });
    Comlink.expose(service, port2);
    return rankHandle(Comlink.wrap<RankAPI>(port1), close, failed);
  };
}
