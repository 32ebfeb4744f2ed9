// version.ts — the SDK's name and version as sent in Attach.sdk.
export const SDK_VERSION = '0.1.0';
export const SDK_NAME = `muster-typescript/${SDK_VERSION}`;
