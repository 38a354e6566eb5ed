import { randomText } from './random-text.ts';

/** 144 bits from the CSPRNG: unguessable, URL-safe, sortable by nothing. */
export const newOperationId = (): string => `op_${randomText(18, 'base64url')}`;

/** Operation ids have exactly this shape; anything else is not one of ours. */
export const isOperationId = (value: string): boolean => /^op_[\w-]{24}$/.test(value);
