package stack

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// outputs maps the template's outputs to the parts they name.
func (s *Stack) outputs() map[string]*string {
	return map[string]*string{
		"DataBucketName": &s.Bucket, "ImportQueueUrl": &s.ImportQueue, "ImportDLQUrl": &s.ImportDLQ,
		"ArrivalsQueueUrl": &s.ArrivalsQueue, "ArrivalsDLQUrl": &s.ArrivalsDLQ, "ScheduleDLQUrl": &s.ScheduleDLQ,
		"NotifyTopicArn": &s.Topic, "ExportScheduleGroup": &s.ExportScheduleGroup, "ExportScheduleRoleArn": &s.ExportScheduleRole,
		"ScheduleDLQArn": &s.ScheduleDLQArn,
	}
}

// functionOutputs maps the function outputs to their roles.
var functionOutputs = map[string]string{"RouterFunctionArn": "router", "EnqueueFunctionArn": "enqueue",
	"PollerFunctionArn": "poller", "DequeueFunctionArn": "dequeue"}

// fromCloudFormation reads the stack's outputs, its schedules (resources
// of type AWS::Scheduler::Schedule) and the poller function's environment
// (what the functions run with: ROUTES or CONFIG_KEY, FNO_*).
func fromCloudFormation(ctx context.Context, c *Clients, name string, s *Stack) error {
	out, err := c.CloudFormation.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &name})
	if err != nil {
		return fmt.Errorf("stack %q: %w (check the name, the region (--region) and that your credentials may cloudformation:DescribeStacks)", name, err)
	}
	if len(out.Stacks) == 0 {
		return fmt.Errorf("stack %q: CloudFormation does not know it in %s", name, c.AWS.Region)
	}
	st := out.Stacks[0]
	s.Name, s.Status = aws.ToString(st.StackName), string(st.StackStatus)
	fields := s.outputs()
	for _, o := range st.Outputs {
		k, v := aws.ToString(o.OutputKey), aws.ToString(o.OutputValue)
		if p, ok := fields[k]; ok {
			*p = v
		}
		if role, ok := functionOutputs[k]; ok {
			s.Functions[role] = v
		}
	}
	if s.Bucket == "" {
		return fmt.Errorf("stack %q has no DataBucketName output: is it an s3-fno stack?", name)
	}
	p := cloudformation.NewListStackResourcesPaginator(c.CloudFormation, &cloudformation.ListStackResourcesInput{StackName: &name})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("stack %q: list resources: %w", name, err)
		}
		for _, r := range page.StackResourceSummaries {
			if aws.ToString(r.ResourceType) == "AWS::Scheduler::Schedule" && aws.ToString(r.PhysicalResourceId) != "" {
				s.Schedules = append(s.Schedules, scheduleName(aws.ToString(r.PhysicalResourceId)))
			}
		}
	}
	if fn := s.Functions["poller"]; fn != "" {
		cfg, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: &fn})
		if err != nil {
			return fmt.Errorf("stack %q: read the poller function's settings (%s): %w", name, fn, err)
		}
		if cfg.Environment != nil {
			maps.Copy(s.Env, cfg.Environment.Variables)
		}
	}
	return nil
}

// scheduleName is a schedule's name from its physical ID, which may be
// "<group>/<name>" or an ARN ending so.
func scheduleName(id string) string {
	return id[strings.LastIndex(id, "/")+1:]
}
