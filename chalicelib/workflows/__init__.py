"""Step Functions: starting lifecycles (`starter`) and the Lambda tasks they run (`tasks`)."""
