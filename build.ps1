# rbpf for native code on Windows: build rbpf.dll, the header and the rbpf command into out\.
#   .\build.ps1            restore and build everything (needs the .NET 10 SDK and the MSVC linker
#                          that NativeAOT uses: Visual Studio's "Desktop development with C++")
#   .\build.ps1 test       build, then run the xunit suite
# The JIT compiles for the Microsoft x64 convention on x86-64 Windows (tested on Linux through an
# emulation of that convention, not on Windows); the uBPF API's JIT functions are not available here.
param([string]$Command = "build")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$Config = if ($env:CONFIG) { $env:CONFIG } else { "Release" }
$Rid = if ([System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture -eq "Arm64") { "win-arm64" } else { "win-x64" }
$Out = Join-Path $PSScriptRoot "out"

function Build {
    dotnet build Rbpf.slnx -c $Config -nologo -v quiet
    if ($LASTEXITCODE -ne 0) { throw "build failed" }
    dotnet publish src/Rbpf.Native -c $Config -r $Rid -nologo -v quiet -o (Join-Path $Out "native")
    if ($LASTEXITCODE -ne 0) { throw "publishing rbpf.dll failed" }
    dotnet publish src/Rbpf.Cli -c $Config -r $Rid -nologo -v quiet -o (Join-Path $Out "cli")
    if ($LASTEXITCODE -ne 0) { throw "publishing rbpf.exe failed" }
    New-Item -ItemType Directory -Force -Path (Join-Path $Out "bin"), (Join-Path $Out "lib"), (Join-Path $Out "include") | Out-Null
    Copy-Item (Join-Path $Out "native\rbpf.dll") (Join-Path $Out "bin")
    Copy-Item (Join-Path $Out "native\rbpf.lib") (Join-Path $Out "lib") -ErrorAction SilentlyContinue
    Copy-Item (Join-Path $Out "cli\Rbpf.Cli.exe") (Join-Path $Out "bin\rbpf.exe")
    Copy-Item include\rbpf.h (Join-Path $Out "include")
    Write-Host "built: out\bin\rbpf.dll, out\include\rbpf.h, out\bin\rbpf.exe"
}

switch ($Command) {
    "build" { Build }
    "test" {
        Build
        $env:RBPF_CLI = Join-Path $Out "bin\rbpf.exe"
        dotnet test tests/Rbpf.Tests -c $Config -nologo
        if ($LASTEXITCODE -ne 0) { exit 1 }
    }
    default { Write-Error "usage: .\build.ps1 [build|test]"; exit 2 }
}
