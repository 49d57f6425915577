import adapter from '@sveltejs/adapter-static';
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// SvelteKit 3 takes its configuration here (svelte.config.js is refused).
export default defineConfig({
  plugins: [
    sveltekit({
      // Every page is prerendered to plain files, like the Perseus export the
      // edge relay serves.
      adapter: adapter({ pages: 'build', assets: 'build', strict: true }),
    }),
  ],
});
