/**
 * Run with `node --import <this file>`: hides @grpc/grpc-js from every import, as in an application
 * that never installed the optional peer dependency (the hooks below run on the loader thread).
 */
import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === '@grpc/grpc-js' || specifier.startsWith('@grpc/grpc-js/')) {
    const err = new Error("Cannot find package '@grpc/grpc-js'");
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}`;

register(`data:text/javascript,${encodeURIComponent(hooks)}`);
