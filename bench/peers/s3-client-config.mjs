// The AWS SDK's settings for the bench's S3 server, shared by the aws-sdk peer and @tus/s3-store
// (a module of its own, so that the tus server loads nothing more than its store needs).

/** Path style on the bench's endpoint; checksums only where S3 requires them. */
export function clientConfig(env) {
  return {
    region: 'us-east-1',
    endpoint: env.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKey, secretAccessKey: env.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  }
}
