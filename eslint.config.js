import { readdirSync } from 'node:fs';
import { fileURLToPath, URL } from 'node:url';
import js from '@eslint/js';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tsdoc from 'eslint-plugin-tsdoc';
import tseslint from 'typescript-eslint';

// Every folder under src/adapters/ is one adapter: it may import the core, never another adapter.
const adapters = readdirSync(new URL('./src/adapters/', import.meta.url), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);

const boundaries = [
  {
    target: ['./src/*.ts', './src/internal/**'],
    from: ['./src/adapters', './src/testing', './src/integrations'],
    message: 'The core never imports an adapter, the testing kit or an integration.',
  },
  ...adapters.map((adapter) => ({
    target: `./src/adapters/${adapter}/**`,
    from: './src/adapters',
    except: [`./${adapter}`],
    message: 'An adapter never imports another adapter.',
  })),
  {
    target: './src/adapters/**',
    from: ['./src/testing', './src/integrations'],
    message: 'An adapter never imports the testing kit or an integration.',
  },
];
const tools = [
  {
    target: ['./src/**', './test/**', './chaos/**', './bench/**', './scripts/**', './harness/**'],
    from: './examples',
    message: 'Examples are for reading: nothing imports them.',
  },
  {
    target: './harness/**',
    from: ['./chaos', './bench', './examples', './test', './scripts'],
    message: 'The harness is what the tools share: it imports none of them.',
  },
  {
    target: './src/**',
    from: './harness',
    message: "The library never imports the tools' harness.",
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'dist-check/**', 'docs/api/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [
        createNodeResolver({
          extensions: ['.ts', '.js', '.json', '.node'],
          extensionAlias: { '.js': ['.ts', '.js'] },
          tsconfig: { configFile: fileURLToPath(new URL('./tsconfig.json', import.meta.url)) },
        }),
      ],
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: [...boundaries, ...tools] }],
    },
  },
  {
    // The demo's own test runs the demo and unit-tests its timeline.
    files: ['test/demo.test.ts'],
    rules: { 'import-x/no-restricted-paths': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { tsdoc },
    rules: {
      'tsdoc/syntax': 'error',
      // The library speaks through events, reports and `debug`; only the signal handling ends the process.
      'no-console': 'error',
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'exit', message: 'Only src/signals.ts ends the process.' },
      ],
    },
  },
  {
    files: ['src/signals.ts'],
    rules: { 'no-console': 'off', 'no-restricted-properties': 'off' },
  },
);
