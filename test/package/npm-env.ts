/**
 * The environment for an npm run on a copy or a consumer project: this process's, minus what
 * `npm test` exported about this repository. npm must find the project it runs in, not ours
 * (npm_config_local_prefix), and the scripts' npm_package_* / npm_lifecycle_* describe our package.
 */
export const npmEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(key)),
);
