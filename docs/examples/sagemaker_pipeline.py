"""A SageMaker Pipeline: the dummy-training step, then a step that checks its output as a packaging step would.

Building the definition calls no AWS API: it needs a region (AWS_DEFAULT_REGION), not credentials. This prints
the definition; ``pipeline.upsert(role_arn=ROLE)`` would create the pipeline in your account.
"""

from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import ProcessingStep

from dummy_training.sagemaker.pipelines_step import model_s3_uri, processing_step

ROLE = "arn:aws:iam::123456789012:role/SageMakerProcessing"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0-root"

model = ParameterString("ModelS3Uri", default_value="s3://bucket/models/model.tar.gz")
hyperparameters = ParameterString("HyperparametersS3Uri", default_value="s3://bucket/config/hyperparameters.json")
output = ParameterString("OutputS3Uri", default_value="s3://bucket/dummy-training/output")
session = PipelineSession()

repack = processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri=model,
                         hyperparameters_s3_uri=hyperparameters, output_s3_uri=output,
                         instance_type="ml.m5.xlarge", sagemaker_session=session)

# Takes the repack step's output property as its input, so it runs after it; fails without a root
# hyperparameters.json in the model.
checker = Processor(role=ROLE, image_uri=IMAGE, instance_count=1, instance_type="ml.m5.large",
                    entrypoint=["python3", "-c", "import sys; from dummy_training.kfp.runtime import check_model; "
                                "check_model(sys.argv[1])"],
                    sagemaker_session=session)
check = ProcessingStep("Check", step_args=checker.run(
    inputs=[ProcessingInput(input_name="model", s3_input=ProcessingS3Input(
        s3_uri=model_s3_uri(repack), local_path="/opt/ml/processing/input/model",
        s3_data_type="S3Prefix", s3_input_mode="File"))],
    arguments=["/opt/ml/processing/input/model"]))

pipeline = Pipeline(name="dummy-training", parameters=[model, hyperparameters, output], steps=[repack, check],
                    sagemaker_session=session)

if __name__ == "__main__":
    print(pipeline.definition())
