/**
 * Tokens, roles and the checks every API route makes.
 * @module
 */
export { ANONYMOUS, Authorizer, type Scope } from "./authorize.js";
export {
  type Grant,
  hashToken,
  loadTokensFile,
  MIN_TOKEN_LENGTH,
  type Principal,
  parseTokens,
  ROLE_RANK,
  ROLES,
  type Role,
  TokenRegistry,
  type TokenSpec,
} from "./tokens.js";
