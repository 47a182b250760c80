// A rank in a Node worker_thread (the CLI): the RankService behind comlink on parentPort.

import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { initNodeBackend } from '../backend/node';
import { RankService } from './rank';

if (!parentPort) throw new Error('node-rank-worker.ts runs inside a worker_thread');
Comlink.expose(new RankService(initNodeBackend), nodeEndpoint(parentPort));
