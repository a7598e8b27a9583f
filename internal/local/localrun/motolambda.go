package localrun

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// registerFunctions registers each function (by its logical ID, the name
// its Runtime API host gives it) in moto_server's Lambda as a placeholder,
// so that what looks a deployment's functions up finds them: the
// operator's doctor, and the export schedules, whose target is the dequeue
// function's ARN. moto runs none of them (that would take Docker); the
// Runtime API hosts do. moto wants an existing role, made through its IAM
// query API (the project has no IAM client).
func registerFunctions(ctx context.Context, cfg aws.Config, stack *Stack, logicalIDs []string) (map[string]string, error) {
	role := stack.Name + "-FunctionRole"
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if err := iamQuery(ctx, cfg, url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {role},
		"AssumeRolePolicyDocument": {trust}}); err != nil {
		return nil, fmt.Errorf("create the functions' placeholder role in moto: %w", err)
	}
	code, err := placeholderZip()
	if err != nil {
		return nil, err
	}
	lc := lambda.NewFromConfig(cfg)
	arns := map[string]string{}
	for _, id := range logicalIDs {
		out, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(id), Runtime: lambdatypes.RuntimeProvidedal2023,
			Handler: aws.String("bootstrap"), Role: aws.String("arn:aws:iam::123456789012:role/" + role),
			Architectures: []lambdatypes.Architecture{lambdatypes.ArchitectureArm64}, Code: &lambdatypes.FunctionCode{ZipFile: code},
			Description: aws.String("placeholder: runs behind a local Runtime API host")})
		if err != nil {
			return nil, fmt.Errorf("register %s in moto's Lambda: %w", id, err)
		}
		arns[id] = aws.ToString(out.FunctionArn)
	}
	return arns, nil
}

// placeholderZip is a deployment package with an empty bootstrap.
func placeholderZip() ([]byte, error) {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	if _, err := z.Create("bootstrap"); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// iamQuery makes one signed IAM query API call to cfg's endpoint (moto).
func iamQuery(ctx context.Context, cfg aws.Config, form url.Values) error {
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, aws.ToString(cfg.BaseEndpoint)+"/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "iam", "us-east-1", time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("IAM %s: %s: %s", form.Get("Action"), resp.Status, b)
	}
	return nil
}
