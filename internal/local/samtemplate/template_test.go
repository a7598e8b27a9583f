package samtemplate_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
)

const small = `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Mem: {Type: Number, Default: 512, MinValue: 128, MaxValue: 1024}
  Secret: {Type: String}
Mappings:
  Sizes:
    dev: {Timeout: 10}
    prod: {Timeout: 30}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: {"Fn::Not": [{"Condition": IsProd}]}
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    CodeUri: .
    Timeout: !FindInMap [Sizes, !Ref Stage, Timeout]
    MemorySize: !Ref Mem
    Layers: [global-layer]
    Environment:
      Variables:
        STAGE: !Ref Stage
        QUEUE: !Ref Queue
        REGION_STACK: !Sub "${AWS::Region}/${AWS::StackName}"
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Join ["-", [!Ref "AWS::StackName", q, !If [IsProd, p, d]]]
      Tags: [{Key: a, Value: !If [IsProd, x, !Ref "AWS::NoValue"]}]
  ThingFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: makefile}
    Properties:
      Layers: [own-layer]
      Environment:
        Variables:
          STAGE: overridden
          ARN: !GetAtt Queue.Arn
          ARN2: {"Fn::GetAtt": [Queue, Arn]}
          LITERAL: !Sub "${!NotAVar}-${Stage}"
          SUBMAP: !Sub ["${A}-${Queue.QueueName}", {A: !Select [1, !Split [",", "x,y,z"]]}]
          NEEDS: !Ref Secret
      Events:
        Tick: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 minute)}}
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/other/
      Timeout: 7
`

func TestParseAndResolve(t *testing.T) {
	tpl, err := samtemplate.Parse([]byte(small))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("parameters", func(t *testing.T) {
		p := tpl.Parameters["Mem"]
		if p.Default != "512" || !p.HasDefault || *p.MinValue != 128 || *p.MaxValue != 1024 {
			t.Errorf("Mem = %+v", p)
		}
		if tpl.Parameters["Secret"].HasDefault {
			t.Error("Secret has a default")
		}
		if !reflect.DeepEqual(tpl.Parameters["Stage"].AllowedValues, []string{"dev", "prod"}) {
			t.Errorf("AllowedValues %v", tpl.Parameters["Stage"].AllowedValues)
		}
	})
	t.Run("short and long forms are the same", func(t *testing.T) {
		vars := tpl.Resources["ThingFunction"].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		if !reflect.DeepEqual(vars["ARN"], vars["ARN2"]) {
			t.Errorf("!GetAtt %v != Fn::GetAtt %v", vars["ARN"], vars["ARN2"])
		}
		if !reflect.DeepEqual(vars["NEEDS"], map[string]any{"Ref": "Secret"}) {
			t.Errorf("!Ref = %v", vars["NEEDS"])
		}
	})
	t.Run("function with globals, defaults", func(t *testing.T) {
		f, err := tpl.Function("ThingFunction", samtemplate.Values{
			Attributes: map[string]string{"Queue.QueueName": "qn"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != "thing" || f.Package != "./functions/thing" || f.BuildMethod != "makefile" || f.Runtime != "provided.al2023" {
			t.Errorf("function %+v", f)
		}
		if f.Timeout != 10*time.Second || f.MemoryMB != 512 {
			t.Errorf("timeout %v memory %d", f.Timeout, f.MemoryMB)
		}
		want := map[string]string{
			"STAGE":        "overridden",
			"REGION_STACK": "us-east-1/s3-fno",
			"LITERAL":      "${NotAVar}-dev",
			"SUBMAP":       "y-qn",
		}
		if !reflect.DeepEqual(f.Env, want) {
			t.Errorf("env %v, want %v", f.Env, want)
		}
		for name, want := range map[string]string{"QUEUE": "Queue", "ARN": "Queue.Arn", "ARN2": "Queue.Arn", "NEEDS": "Secret"} {
			var ue *samtemplate.UnresolvedError
			if !errors.As(f.Unresolved[name], &ue) || ue.Name != want {
				t.Errorf("unresolved %s = %v, want on %s", name, f.Unresolved[name], want)
			}
		}
		if layers := f.Properties["Layers"]; !reflect.DeepEqual(layers, []any{"global-layer", "own-layer"}) {
			t.Errorf("lists must concatenate, globals first: %v", layers)
		}
		if len(f.Events) != 1 || f.Events[0].Name != "Tick" || f.Events[0].Type != "ScheduleV2" {
			t.Errorf("events %+v", f.Events)
		}
	})
	t.Run("function with values", func(t *testing.T) {
		f, err := tpl.Function("ThingFunction", samtemplate.Values{
			Parameters: map[string]string{"Stage": "prod", "Mem": "1024", "Secret": "arn:x"},
			Resources:  map[string]string{"Queue": "https://q"},
			Attributes: map[string]string{"Queue.Arn": "arn:q", "Queue.QueueName": "qn"},
			Region:     "eu-west-1",
			StackName:  "st",
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Unresolved) != 0 {
			t.Errorf("unresolved %v", f.Unresolved)
		}
		if f.Timeout != 30*time.Second || f.MemoryMB != 1024 || f.Env["QUEUE"] != "https://q" ||
			f.Env["ARN"] != "arn:q" || f.Env["NEEDS"] != "arn:x" || f.Env["REGION_STACK"] != "eu-west-1/st" {
			t.Errorf("function %+v", f)
		}
	})
	t.Run("CodeUri folder", func(t *testing.T) {
		f, err := tpl.Function("OtherFunction", samtemplate.Values{})
		if err != nil {
			t.Fatal(err)
		}
		if f.Package != "./functions/other" || f.Name != "other" || f.Timeout != 7*time.Second {
			t.Errorf("function %+v", f)
		}
	})
	t.Run("conditions, Join, If and NoValue", func(t *testing.T) {
		props := tpl.Resources["Queue"].Properties
		for stage, want := range map[string]string{"dev": "s3-fno-q-d", "prod": "s3-fno-q-p"} {
			v := samtemplate.Values{Parameters: map[string]string{"Stage": stage}}
			got, err := tpl.EvalString(props["QueueName"], v)
			if err != nil || got != want {
				t.Errorf("Stage=%s: QueueName %q, %v; want %q", stage, got, err, want)
			}
			notProd, err := tpl.Condition("NotProd", v)
			if err != nil || notProd != (stage != "prod") {
				t.Errorf("Stage=%s: NotProd %v, %v", stage, notProd, err)
			}
		}
		tags, err := tpl.Eval(props["Tags"], samtemplate.Values{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tags, []any{map[string]any{"Key": "a"}}) {
			t.Errorf("AWS::NoValue must drop the property: %v", tags)
		}
	})
	t.Run("unknown function", func(t *testing.T) {
		if _, err := tpl.Function("Queue", samtemplate.Values{}); err == nil {
			t.Error("a queue was returned as a function")
		}
	})
}

func TestParseErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"not a mapping": "- a\n- b\n",
		"bad yaml":      "a: [\n",
		"no type":       "Resources:\n  X:\n    Properties: {}\n",
		"bad GetAtt":    "Resources:\n  X:\n    Type: T\n    Properties: {A: !GetAtt NoDot}\n",
	} {
		if _, err := samtemplate.Parse([]byte(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
