// A training worker: one GPT-2 and its optimizer, driven by the page through comlink (src/protocol.ts).

import * as Comlink from 'comlink';
import * as tf from '@tensorflow/tfjs';
import { initBrowserBackend } from '../src/browser-backend';
import type { InitInfo, SampleRequest, TrainerWorkerAPI } from '../src/protocol';
import type { RunConfig } from '../src/model/config';
import { checkVocab } from '../src/model/config';
import { makeTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Session, type TrainEvent } from '../src/train/session';
import { decodeCheckpoint, encodeCheckpoint } from '../src/train/checkpoint';
import { verifyLlmc } from '../src/verify';

let trainer: Trainer | null = null;
let session: Session | null = null;
let emit: (e: TrainEvent) => void = () => {};

/** Drops the page's event callback (a comlink proxy), closing its MessagePort on both sides. */
function releaseEmit() {
  (emit as unknown as Partial<Comlink.ProxyMethods>)[Comlink.releaseProxy]?.();
  emit = () => {};
}

function need<T>(x: T | null, what: string): T {
  if (!x) throw new Error(`the worker has no ${what} yet: call init() first`);
  return x;
}

const api: TrainerWorkerAPI = {
  async init(config: RunConfig, text: string, onEvent, checkpoint?: ArrayBuffer): Promise<InitInfo> {
    if (emit !== onEvent) releaseEmit();
    emit = onEvent;
    session?.stop();
    trainer?.dispose();
    trainer = session = null;
    const backend = await initBrowserBackend(config.backend, (message) => {
      session?.stop();
      emit({ type: 'state', state: 'error', message: `${message}. Training stopped; your last checkpoint is kept. Reload, or switch to the wasm backend` });
    });
    const ckpt = checkpoint ? decodeCheckpoint(checkpoint) : null;
    const tokenizer = await makeTokenizer(ckpt ? ckpt.header.tokenizer : config.tokenizer === 'bpe' ? { kind: 'bpe' } : { kind: 'char', text });
    const cfg = ckpt ? { ...ckpt.header.config, max_iters: config.max_iters, backend: config.backend } : checkVocab(config, tokenizer.vocabSize, false);
    const data = makeDataset(text, tokenizer, cfg.block_size);
    trainer = new Trainer(cfg, data);
    if (ckpt) trainer.restore(ckpt);
    session = new Session(
      trainer,
      {
        maxIters: cfg.max_iters, evalInterval: cfg.eval_interval, evalIters: cfg.eval_iters,
        sampleInterval: cfg.eval_interval, sampleTokens: 200, sampleOptions: { temperature: 0.8, topK: 40, prompt: '' },
      },
      (e) => emit(e),
    );
    if (ckpt?.header.losses) session.losses.push(...ckpt.header.losses);
    if (ckpt?.header.val_losses) session.valLosses.push(...ckpt.header.val_losses);
    return {
      backend, numParams: trainer.table.total, vocabSize: tokenizer.vocabSize,
      trainTokens: data.train.length, valTokens: data.val.length, step: trainer.step,
    };
  },
  async run() {
    return need(session, 'session').run();
  },
  pause: () => session?.pause(),
  resume: () => session?.resume(),
  stop: () => session?.stop(),
  async sample(req: SampleRequest) {
    return need(trainer, 'model').sample(req.prompt, req.tokens, { temperature: req.temperature, topK: req.topK, seed: req.seed });
  },
  async exportCheckpoint() {
    const s = need(session, 'session');
    const buf = encodeCheckpoint(await need(trainer, 'model').toCheckpoint({ losses: s.losses, val_losses: s.valLosses }));
    return Comlink.transfer(buf, [buf]);
  },
  async verifyLlmc(config, model, state, adamw) {
    await initBrowserBackend(config.backend);
    return verifyLlmc(model, state, adamw);
  },
  memory() {
    const m = tf.memory();
    return { numTensors: m.numTensors, numBytes: m.numBytes };
  },
  dispose() {
    session?.stop();
    releaseEmit();
  },
};

Comlink.expose(api);
