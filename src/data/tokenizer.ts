// Tokenizers. "char": one token per distinct character of the training text (nanoGPT's shakespeare_char).
// "bpe": GPT-2's byte-pair encoding (r50k_base, 50,257 tokens) from gpt-tokenizer, which ships its
// vocabulary inside the package, so nothing is downloaded at run time.

export interface Tokenizer {
  kind: 'char' | 'bpe';
  vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  /** What a checkpoint must store to rebuild this tokenizer. */
  spec(): TokenizerSpec;
}

export type TokenizerSpec = { kind: 'char'; chars: string } | { kind: 'bpe' };

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export function charTokenizer(textOrChars: string, fromChars = false): Tokenizer {
  const chars = fromChars ? [...textOrChars] : [...new Set(textOrChars)].sort();
  if (chars.length === 0) throw new TokenizerError('the text is empty: a character vocabulary needs at least one character');
  const index = new Map(chars.map((c, i) => [c, i]));
  return {
    kind: 'char',
    vocabSize: chars.length,
    encode(text) {
      const out = new Int32Array([...text].length);
      let i = 0;
      for (const ch of text) {
        const id = index.get(ch);
        if (id === undefined) {
          throw new TokenizerError(`character ${JSON.stringify(ch)} is not in this model's vocabulary (${chars.length} characters from its training text)`);
        }
        out[i++] = id;
      }
      return out;
    },
    decode: (ids) => Array.from(ids, (id) => chars[id] ?? '\uFFFD').join(''),
    spec: () => ({ kind: 'char', chars: chars.join('') }),
  };
}

export async function bpeTokenizer(): Promise<Tokenizer> {
  const { encode, decode } = await import('gpt-tokenizer/encoding/r50k_base');
  return {
    kind: 'bpe',
    vocabSize: 50257,
    encode: (text) => Int32Array.from(encode(text)),
    decode: (ids) => decode(Array.from(ids)),
    spec: () => ({ kind: 'bpe' }),
  };
}

export async function makeTokenizer(spec: TokenizerSpec | { kind: 'char'; text: string }): Promise<Tokenizer> {
  if (spec.kind === 'bpe') return bpeTokenizer();
  return 'chars' in spec ? charTokenizer(spec.chars, true) : charTokenizer(spec.text);
}
