"""Tests of the deployment: the synthesized CloudFormation template and Lambda package."""
