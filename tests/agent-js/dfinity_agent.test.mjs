// @dfinity/agent 3.x (with @dfinity/identity, @dfinity/identity-secp256k1,
// @dfinity/candid and @dfinity/principal 3.x) against `ww serve --http`,
// verification on: v3 synchronous calls, v2 queries and read_state.
import * as agent from '@dfinity/agent';
import { IDL } from '@dfinity/candid';
import { Principal } from '@dfinity/principal';
import * as identity from '@dfinity/identity';
import { Secp256k1KeyIdentity } from '@dfinity/identity-secp256k1';
import { agentSuite } from './agent_suite.mjs';

agentSuite({
  ...agent,
  ...identity,
  IDL,
  Principal,
  Secp256k1KeyIdentity,
  line: '@dfinity/agent',
  certificatePrincipal: (canisterId) => ({ canisterId }),
  endpoints: { call: 'v3', query: 'v2', readState: 'v2' },
});
